"""The layers of billing and the inventory, read from the source with ast: every import in
``billing/`` and ``provisioning/`` (inside functions and TYPE_CHECKING blocks too) goes to the
same layer or one below it.

    prices (billing.prices) <- inventory (provisioning) <- costs (billing.costs) <- billing's jobs
    and pages

The launches (the next issues: quotes use prices and costs) go between costs and the jobs. A new
module under either package must be given its layer here, or this test fails."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("billing", "provisioning")

# Bottom first. A module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "prices",
        (
            "billing.prices",
            # What every layer shares: the one app's models (one migrations folder), money
            # formatting, command line plumbing, template filters.
            "billing.models",
            "billing.money",
            "billing.cli",
            "billing.apps",
            "billing.migrations",
            "billing.templatetags",
            # The budget's rows are billing's models like the others (imported by
            # billing.models), and the freeze flag on them is what the launch request
            # service asks (its refusal hook); the budget's logic is its own layer.
            "billing.budgets.models",
            "billing.budgets.freeze",
        ),
    ),
    # The launch requests' models are the app's models (one migrations folder): the costs'
    # forecast counts approved launches from them.
    (
        "inventory",
        ("provisioning", "provisioning.launches.models", "provisioning.launches.execution_models"),
    ),
    ("costs", ("billing.costs",)),
    # Launch requests: quotes use prices and costs; their commands sit with them.
    (
        "launches",
        (
            "provisioning.launches",
            "provisioning.management.commands.launch",
            "provisioning.management.commands.requests",
            "provisioning.management.commands.request",
            "provisioning.management.commands.approve",
            "provisioning.management.commands.reject",
            "provisioning.management.commands.cancel",
            "provisioning.management.commands.stop",
            "provisioning.management.commands.approval-policy",
        ),
    ),
    # Budgets read the costs and act through the launches (issue 20: the alert's stop links).
    ("budgets", ("billing.budgets",)),
    (
        "billing's jobs and pages",
        ("billing.tasks", "billing.views", "billing.urls", "billing.forms", "billing.management"),
    ),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}
EXACT = {"billing": "prices"}  # the package itself (billing/__init__.py), not what it holds


def layer_of(module: str) -> str | None:
    """The layer of a dotted module (or of a name inside one), or None when it is outside both
    packages."""
    if module in EXACT:
        return EXACT[module]
    best: tuple[int, str] | None = None
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (
                best is None or len(prefix) > best[0]
            ):
                best = (len(prefix), name)
    return best[1] if best else None


def imported_modules(
    source: str, module: str, *, is_package: bool = False
) -> list[tuple[int, str]]:
    """(line, dotted target) of every import in ``source``; ``from a import b`` counts as
    ``a.b`` (``b`` may be a module or a name in ``a``: the layer is the same either way, unless
    ``a`` is a package of several layers, like ``billing``)."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """What ``module``'s source imports against the layers."""
    own = layer_of(module)
    if own is None:
        return [f"{module}: no layer (add it to tests/test_layers.py LAYERS)"]
    wrong = []
    for line, target in imported_modules(source, module, is_package=is_package):
        layer = layer_of(target)
        if layer is not None and RANK[layer] > RANK[own]:
            wrong.append(f"{module}:{line} ({own}) imports {target} ({layer})")
    return wrong


def source_modules() -> list[tuple[str, Path, bool]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            found.append((".".join(parts), path, is_package))
    return found


def test_no_import_goes_against_the_layers():
    modules = source_modules()
    assert len(modules) > 40  # both packages were read
    wrong = [
        problem
        for module, path, is_package in modules
        for problem in violations(path.read_text(), module, is_package=is_package)
    ]
    assert wrong == []


def test_the_layers_are_prices_then_inventory_then_costs_then_jobs():
    assert [
        layer_of(m)
        for m in (
            "billing.prices.selectors",
            "billing.models",
            "provisioning.inventory",
            "billing.costs.selectors",
            "billing.tasks",
            "billing.management.commands.sync",
        )
    ] == [
        "prices",
        "prices",
        "inventory",
        "costs",
        "billing's jobs and pages",
        "billing's jobs and pages",
    ]
    assert layer_of("clusterweb.integrations.aws") is None  # outside: not a layer


def test_the_check_reports_each_kind_of_import_against_the_layers():
    prices = "from provisioning.models import Node\n\ndef f():\n"
    prices += "    from billing.costs import selectors\n"
    assert violations(prices, "billing.prices.lookups") == [
        "billing.prices.lookups:1 (prices) imports provisioning.models.Node (inventory)",
        "billing.prices.lookups:4 (prices) imports billing.costs.selectors (costs)",
    ]
    inventory = "import billing.costs.services\nfrom billing import tasks\n"
    assert violations(inventory, "provisioning.selectors") == [
        "provisioning.selectors:1 (inventory) imports billing.costs.services (costs)",
        "provisioning.selectors:2 (inventory) imports billing.tasks (billing's jobs and pages)",
    ]
    relative = "from ..costs import charts\n"
    assert violations(relative, "billing.prices.estimates") == [
        "billing.prices.estimates:1 (prices) imports billing.costs.charts (costs)"
    ]
    assert violations("import billing\n", "billing.prices.catalog") == []
    assert violations("x = 1\n", "billing.jobs") == [
        "billing.jobs: no layer (add it to tests/test_layers.py LAYERS)"
    ]
    downward = (
        "from billing.prices.selectors import PriceQuote\nfrom provisioning import inventory\n"
    )
    assert violations(downward, "billing.costs.services") == []
