"""Create Superset's admin user, or reset its password to the configured one.

Run by the Superset virtualenv's Python (``lakehouse.services.superset`` starts it; it imports only
Superset, never the project). The user and password come from the environment
(``LAKEHOUSE_SUPERSET_ADMIN_USER``, ``LAKEHOUSE_SUPERSET_ADMIN_PASSWORD``) rather than from
``superset fab create-admin --password ...``, which would put the password on a command line where
every local user can read it.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    user = os.environ["LAKEHOUSE_SUPERSET_ADMIN_USER"]
    password = os.environ["LAKEHOUSE_SUPERSET_ADMIN_PASSWORD"]
    if not password:
        print("superset_admin: empty admin password", file=sys.stderr)
        return 2
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        sm = app.appbuilder.sm
        role = sm.find_role(sm.auth_role_admin)
        if role is None:  # `superset init` not run yet: the role is created here and completed by init
            role = sm.add_role(sm.auth_role_admin)
        existing = sm.find_user(username=user)
        if existing is None:
            created = sm.add_user(user, "Lakehouse", "Admin", f"{user}@localhost", role, password=password)
            if not created:
                print(f"superset_admin: could not create user {user!r}", file=sys.stderr)
                return 1
            print(f"superset_admin: created admin user {user!r}")
        else:
            sm.reset_password(existing.id, password)
            if role not in existing.roles:
                existing.roles.append(role)
                sm.update_user(existing)
            print(f"superset_admin: admin user {user!r} exists; password set to the configured one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
