# Loads the regenerated on-demand table (issue 14: every type the AWS layer offers in us-east-1,
# from scripts/prices_generate.py). Keyed like 0002: rows already stored are left as they are;
# rows of older effective dates stay for the times before the new ones.

from django.db import migrations

from billing.prices.catalog import bundled_rows, catalog_rows_store
from clusterweb import clock


def load(apps, schema_editor):
    catalog_price = apps.get_model("billing", "CatalogPrice")
    # Only keys not stored yet: a row an admin imported, or the price lookup found, under the same
    # key keeps its price and origin.
    stored = set(catalog_price.objects.values_list("kind", "region", "item", "effective_from"))
    rows = [
        row
        for row in bundled_rows()
        if (row.kind, row.region, row.item, row.effective_from) not in stored
    ]
    catalog_rows_store(catalog_price, rows, origin="bundled", loaded_at=clock.now())


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_price_lookup"),
    ]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
