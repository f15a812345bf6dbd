"""`kgmigrate backup ...`: snapshots of the graph in the backup store."""

import dataclasses
from typing import Annotated

import typer
from rich.markup import escape

from kgmigrate.cli.common import (
    JsonFlag,
    app,
    counting,
    out,
    print_json,
    session,
)
from kgmigrate.errors import KgmError

backup_app = typer.Typer(help="Snapshots of the graph in the backup store (KGMIGRATE_BACKUP_DIR).",
                         no_args_is_help=True, rich_markup_mode=None)
app.add_typer(backup_app, name="backup")


@backup_app.command("create")
def backup_create(
    labels: Annotated[list[str] | None, typer.Option(
        "--labels", "-l", metavar="LABEL", help="Only nodes with these labels (and their "
        "relationships); repeat the option for several.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Export the graph (or some labels) to the backup store, streaming, with progress."""
    with session(as_json) as migrations, counting(quiet=as_json) as advance:
        manifest = migrations.create_backup(labels or (), progress=advance)
        where = migrations.settings.backup_dir
    if as_json:
        print_json(manifest.model_dump(mode="json"))
        return
    scope = ", ".join(manifest.labels) or "whole graph"
    out.print(f"snapshot [bold]{manifest.id}[/] ({scope}): {manifest.nodes:,} nodes, "
              f"{manifest.relationships:,} relationships in {where}")


@backup_app.command("list")
def backup_list(as_json: JsonFlag = False) -> None:
    """Complete snapshots, newest first."""
    with session(as_json) as migrations:
        manifests = migrations.list_backups()
        where = migrations.settings.backup_dir
    if as_json:
        print_json([m.model_dump(mode="json") for m in manifests])
        return
    if not manifests:
        out.print(f"no snapshots in {where}")
    for m in manifests:
        scope = ", ".join(m.labels) or "whole graph"
        out.print(f"{m.id}  {m.created_at:%Y-%m-%d %H:%M:%S}  {scope}"
                  f"  {m.nodes:,} nodes  {m.relationships:,} relationships  {m.graph}"
                  + (f"  ({escape(m.reason)})" if m.reason else ""), highlight=False)


@backup_app.command("restore")
def backup_restore(
    snapshot_id: Annotated[str, typer.Argument(help="Snapshot id (`kgmigrate backup list`).")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Compare the graph's "
                                         "fingerprint with the snapshot's afterwards.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Replace what the snapshot covers (the whole graph, or its labels) with the snapshot.
    What applications wrote to those entities since the snapshot is lost: it asks first."""
    with session(as_json, absent_ok=True) as migrations:
        manifest = migrations.backup_manifest(snapshot_id)
        scope = ", ".join(manifest.labels) or "the whole graph"
        if not yes and not typer.confirm(
                f"Replace {scope} of {migrations.backend.target.display} with snapshot "
                f"{snapshot_id} "
                f"({manifest.nodes:,} nodes, taken {manifest.created_at:%Y-%m-%d %H:%M})?"):
            raise typer.Exit(1)
        with counting(quiet=as_json) as advance:
            result = migrations.restore_backup(snapshot_id, verify=verify, progress=advance)
    if as_json:
        print_json(result.model_dump())
    else:
        out.print(f"restored snapshot {result.id}: {result.nodes:,} nodes, "
                  f"{result.relationships:,} relationships ({result.nodes_deleted:,} nodes "
                  "replaced)" + {True: "; fingerprint verified", False: "",
                                 None: ""}[result.verified])
    if result.verified is False:
        out.print("[red]the graph's fingerprint differs from the snapshot's[/]")
        raise typer.Exit(1)


@app.command()
def prune(
    older_than: Annotated[float | None, typer.Option(
        "--older-than", min=0, metavar="DAYS", help="Days since a run was finalized (default: "
        "KGMIGRATE_UNDO_RETENTION_DAYS, 30).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, remove nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Remove the undo logs of finalized runs (completed, rolled back, abandoned) older than the
    retention. Runs that may still be resumed or rolled back keep theirs; snapshots stay."""
    if as_json and not (yes or dry_run):
        raise KgmError("--json removes without asking: add --yes (or --dry-run)")
    with session(as_json) as migrations:
        found = migrations.prune(older_than_days=older_than, dry_run=True)
        if found and not (dry_run or yes) and not typer.confirm(
                f"Remove the undo logs of {len(found)} runs "
                f"({sum(p.undo_rows for p in found):,} undo records)? They can no longer be "
                "reverted from them."):
            raise typer.Exit(1)
        pruned = found if dry_run else migrations.prune(
            older_than_days=older_than, only=[p.run_id for p in found])
    if as_json:
        print_json([{**dataclasses.asdict(p), "dry_run": dry_run} for p in pruned])
        return
    verb = "would remove" if dry_run else "removed"
    for p in pruned:
        files = f" and {p.files} files of an earlier kgmigrate" if p.files else ""
        out.print(f"run {p.run_id} ({p.status}, ended {p.finished_at:%Y-%m-%d %H:%M}): {verb} "
                  f"{p.undo_rows:,} undo records{files}")
    if not pruned:
        out.print("Nothing to prune.")
