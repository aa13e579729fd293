"""pinc: the Asterisk-to-CRM connector."""

__version__ = "0.1.0"
