"""The corpus: documents with versions, rights and access groups, read from files and cut into chunks."""
