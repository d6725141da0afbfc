"""Files for people: spreadsheets and PDFs rendered from the reports, and the operators'
spreadsheets read for a bulk import. Pure functions of their input (no I/O, no services):
the routes fetch the data and hand it here."""
