"""The cabinet's link to the central platform (``kiosk sync``); the flow is in ``sync.agent``.

Modules: ``agent`` (the loop: outbox pump, fallback, inbound, housekeeping), ``store`` (its
side of the cabinet database), ``mqtt_link`` / ``http_link`` (the two paths), ``inbound``
(pure checks of what comes down), ``apply`` (applying it whole), ``payments`` (the payment
port over HTTP), ``backoff``.
"""
