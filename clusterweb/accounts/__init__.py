"""Accounts: one Django app (label ``accounts``), laid out by concern.

- ``login/``: logging in with the per-username lockout, logging out, the session rules every
  request passes (idle timeout, group re-check), the ``--by`` user of the command line.
- ``signup/``: invitations, the signup form (on the signup site), approval or rejection, and
  provisioning the LDAP account (``provisioning.py``).
- ``directory/``: the database copy of the directory and the Users page: disable, enable,
  promote, demote, and issuing password reset links.
- ``selfservice/``: the profile page (one's own password and SSH keys) and using a reset link.

Each has ``services.py`` (writes), and as needed ``selectors.py`` (reads), ``views.py``
(dashboard pages), ``site_views.py`` (signup-site pages) and ``tasks.py``. Shared by all, at this
level: ``models.py``, ``forms.py`` (input rules, the uid pattern), ``backends.py`` (its dotted
path is stored in every session), ``group_types.py`` (membership is ``memberUid`` only; settings
imports it), ``throttle.py``, ``passwords.py``, ``ssh_keys.py``, ``tokens.py``,
``sessions.py``, ``tunnels.py``, ``cli.py`` and ``urls.py``. No import circle between the parts:
tests/accounts/test_import_graph.py.
"""
