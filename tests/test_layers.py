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


# --- The AWS layer's bill and the product's estimate: two implementations ---------------------
# The sandbox's bill is the AWS layer's own metering priced with its own table (issue 19): it
# must not borrow the estimate's code or data, and the product must not reach into the layer, or
# a mistake in one would hide in the other instead of showing as a difference on the dashboard.
PRODUCT = ("billing", "provisioning", "clusterweb")
LAYER = "sandbox.aws"


def python_modules(package: str) -> list[tuple[str, Path, bool]]:
    found = []
    for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found.append((".".join(parts[:-1] if is_package else parts), path, is_package))
    return found


def named_modules(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string constant that names a dotted module, as
    ``importlib.import_module("x.y")`` or ``include("x.urls")`` would."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.replace(".", "").replace("_", "").isalnum()
        and "." in node.value
    ]


def reaches(source: str, module: str, is_package: bool, prefixes: tuple[str, ...]) -> list[str]:
    targets = imported_modules(source, module, is_package=is_package) + named_modules(source)
    return [
        f"{module}:{line} -> {target}"
        for line, target in targets
        if any(target == p or target.startswith(p + ".") for p in prefixes)
    ]


def test_the_aws_layer_imports_nothing_of_the_estimate_and_the_product_never_the_layer():
    layer = python_modules(LAYER)
    product = [m for package in PRODUCT for m in python_modules(package)]
    assert len(layer) > 10 and len(product) > 100  # every file was read

    from_layer = [
        hit
        for module, path, is_package in layer
        for hit in reaches(path.read_text(), module, is_package, ("billing", "provisioning"))
    ]
    from_product = [
        hit
        for module, path, is_package in product
        for hit in reaches(path.read_text(), module, is_package, (LAYER,))
    ]
    assert (from_layer, from_product) == ([], [])


def test_the_independence_check_sees_imports_inside_functions_and_modules_named_in_strings():
    lazy = "def prices():\n    from billing.prices.catalog import bundled_rows\n"
    named = "import importlib\nmodule = importlib.import_module('sandbox.aws.bill')\n"

    assert reaches(lazy, "sandbox.aws.pricing", False, ("billing", "provisioning")) == [
        "sandbox.aws.pricing:2 -> billing.prices.catalog.bundled_rows"
    ]
    assert reaches(named, "clusterweb.views", False, (LAYER,)) == [
        "clusterweb.views:2 -> sandbox.aws.bill"
    ]
    assert reaches("from sandbox import urls\n", "clusterweb.urls", False, (LAYER,)) == []
