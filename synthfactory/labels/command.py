"""`synthfactory label`: presentation of the labelling page and Label Studio round trip."""

from __future__ import annotations

import argparse

from synthfactory.errors import UserError


def label_command(args: argparse.Namespace) -> int:
    raise UserError("synthfactory label: not built yet")
