"""Survey tables (R3): the notice's attachments 3 and 6-10 as one XLSX workbook per city,
exported from the inventory and imported back into it (export.py, importer.py)."""
