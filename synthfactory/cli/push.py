"""`synthfactory push STORE/NAME --repo ORG/NAME`: a version to the Hub in one commit, tagged vN
(`synthfactory.publish.hub`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from synthfactory.cli.common import version_or_latest


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    push = sub.add_parser("push", parents=[common], help="upload a version to the Hub in one commit and tag it vN")
    push.add_argument("dataset", help="DIR/NAME")
    push.add_argument("--version", type=int, default=None, help="default: the latest version")
    push.add_argument("--repo", required=True, help="ORG/NAME of the Hub dataset repo")
    push.add_argument("--format", default="hub", help="the layout, as for export")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--dry-run", action="store_true", help="print what would be committed; no network")
    push.add_argument("--force", action="store_true",
                      help="push a version older than the repo's newest vN tag (moves main back)")
    push.set_defaults(func=push_command)


def push_command(args: argparse.Namespace) -> int:
    import tempfile

    from synthfactory.publish.hub import plan_push, push

    args.version = version_or_latest(args.dataset, args.version)
    with tempfile.TemporaryDirectory(prefix="synthfactory-push-") as tmp:
        plan = plan_push(args.dataset, args.version, args.repo, Path(tmp) / "export", private=args.private,
                         fmt=args.format)
        print(f"{'would push' if args.dry_run else 'pushing'} {args.dataset} version {args.version} to "
              f"datasets/{plan.repo_id} ({'private' if plan.private else 'public'}) in one commit, tag {plan.tag}:")
        for name in plan.files:
            print(f"  add {name}")
        print("  delete every other file in the repo but .gitattributes (older data files would be read too)")
        print(f"  message: {plan.commit_message}")
        if args.dry_run:
            return 0
        print(push(plan, force=args.force))
    return 0
