# Loads the regenerated on-demand table (issue 14: every type the AWS layer offers in us-east-1,
# from scripts/prices_generate.py). Keyed like 0002: rows already stored are left as they are;
# rows of older effective dates stay for the times before the new ones.

from django.db import migrations

from billing.prices.catalog import bundled_rows, catalog_rows_store
from clusterweb import clock


def load(apps, schema_editor):
    catalog_price = apps.get_model("billing", "CatalogPrice")
    catalog_rows_store(catalog_price, bundled_rows(), origin="bundled", loaded_at=clock.now())


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_price_lookup"),
    ]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
