"""fairmeter: meter every unit of use exactly once, warn, enforce, bill and settle."""

__version__ = "0.1.0"
