"""Reports: flow charts, incident reports, HTML and PDF rendering."""
