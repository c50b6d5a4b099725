"""Local stand-ins for the GetMyInvoices and Billomat APIs, faithful to ../shared/api/*.md."""
