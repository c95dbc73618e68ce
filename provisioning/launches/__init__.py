"""Launch requests: heavy compute exists only while someone asked for it, at a price they saw.

- ``models.py``: ``LaunchRequest`` (one model for every kind: ``spark``, ``gpu``, ``jupyter``),
  its ``LaunchStep`` log and the ``ApprovalPolicy`` singleton. Imported by
  ``provisioning/models.py`` so the one app (and its migrations folder) holds them.
- ``quotes.py``: the one quote the pages and the command line show (``Quote``).
- ``selectors.py``: reads (a pool's room, what a user may see, the request JSON).
- ``services.py``: the only writers: request, approve, reject, cancel, expire, and the generic
  ``transition`` that every state change (issue 18's execution too) goes through.
- ``forms.py``: input rules shared by the pages and the command line.
- ``tasks.py``: the emails (after commit) and the beat entry that expires undecided requests.
- ``execution.py`` (issue 18): carrying out an approved request in short, leased, re-scheduling
  steps (room, join credentials, capacity, join, workload) and stopping it; its progress row
  ``LaunchExecution`` is in ``execution_models.py``; ``spark.py`` is the Spark worker backend;
  ``outcomes.py`` the quote against the actual cost (and the email when a launch ends);
  ``execution_views.py`` the Stop view and the execution's part of the request page.
"""
