"""The compare view: 2–4 pictures side by side (desktop.compare.view)."""
