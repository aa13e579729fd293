"""Asterisk Manager Interface: the sans-IO protocol, the trio client, a fake Asterisk.

- :mod:`pinc.ami.protocol`: bytes in, :class:`~pinc.ami.protocol.Message` out; actions to bytes.
- :mod:`pinc.ami.client`: :class:`~pinc.ami.client.AmiClient`, the connection kept up forever.
- :mod:`pinc.sim.amiserver`: :class:`~pinc.sim.amiserver.AmiSimServer`, a fake Asterisk on TCP
  that replays recorded transcripts (tests and ``pinc demo``).

Nothing is imported here, so ``import pinc.ami.protocol`` stays free of trio.
"""
