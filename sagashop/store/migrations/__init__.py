"""Tortoise's migrations, one package per service, written by its autodetector
(`python run.py makemigrations`) and never edited once landed; `sagashop.store.schema` runs them."""
