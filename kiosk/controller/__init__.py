"""The controller: door sessions, sales, operator work, alarms, and recovery after power loss.

``Controller`` (in core.py) is assembled from one module per job; see base.py for the shared
state and kiosk/session_table.py for the session's state table.
"""

from kiosk.controller.core import Controller
from kiosk.controller.shelf_plans import division_for

__all__ = ["Controller", "division_for"]
