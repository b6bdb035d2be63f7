"""The thumbnail grid: item model over keyset pages, thumbnail loader, delegate and view."""
