"""Tags: attribution tag store, importers, actors and address normalisation."""
