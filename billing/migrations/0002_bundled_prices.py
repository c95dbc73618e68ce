# Loads the bundled price tables (billing/data/*.csv) so that prices exist right after migrate.

from django.db import migrations

from billing.prices.catalog import bundled_rows, catalog_rows_store
from clusterweb import clock


def load(apps, schema_editor):
    catalog_price = apps.get_model("billing", "CatalogPrice")
    catalog_rows_store(catalog_price, bundled_rows(), origin="bundled", loaded_at=clock.now())


def unload(apps, schema_editor):
    apps.get_model("billing", "CatalogPrice").objects.filter(origin="bundled").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
    ]

    operations = [migrations.RunPython(load, unload)]
