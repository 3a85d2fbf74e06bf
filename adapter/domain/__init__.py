"""The business: invoices, due dates, payment notices. Plain Python, no I/O."""
