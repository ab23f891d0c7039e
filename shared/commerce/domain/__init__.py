"""Pure domain code: values in, values out. No SDK, storage or network imports here."""
