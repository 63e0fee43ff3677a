"""Never imported: the manifest next to it is not valid JSON."""
