"""Domain logic of the factory, in plain Python with no Dagster import."""
