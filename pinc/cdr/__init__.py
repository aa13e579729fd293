"""Calls made while pinc was not listening, recovered from Asterisk's own CDR.

- :mod:`pinc.cdr.rows`: one CDR row, read from ``cdr_csv``'s Master.csv or a MySQL/MariaDB
  ``cdr`` table (sans-IO: text or dicts in, rows out);
- :mod:`pinc.cdr.calls`: rows grouped by linkedid into calls (pure);
- :mod:`pinc.cdr.sources`: reading the rows newer than a moment (files, PyMySQL; threads);
- :mod:`pinc.cdr.recovery`: the recovery run after every AMI login and by ``pinc backfill``.
"""
