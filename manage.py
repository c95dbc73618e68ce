#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clusterweb.settings")
    from django.core.management import execute_from_command_line

    from clusterweb.startup import exit_on_configuration_error

    exit_on_configuration_error()  # reads the environment now, to report it in one line
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
