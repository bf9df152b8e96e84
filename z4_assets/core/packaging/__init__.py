"""The signed package: layout, provenance statements, signatures and their offline verification."""
