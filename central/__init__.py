"""The central service: one implementation of the contract (docs/integration.md).

It stores every cabinet's records once (SQLite or PostgreSQL), answers the cabinets over HTTP
and MQTT, signs what goes down, and, run with ``--simulate``, adds what only a test centre may
have (fault injection, a scripted payment provider, the phone page's test login). It knows the
cabinet only through the contract and the pieces of ``kiosk/`` that define it.
"""
