"""Presentation: tables (``output``), figures and the HTML report. Imports ``runs`` and the layers below."""
