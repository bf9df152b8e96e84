"""(face)"""
