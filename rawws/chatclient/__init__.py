"""The chat clients: `rawws chat` and `rawws send --user`."""
