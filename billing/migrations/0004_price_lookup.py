from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_cost_rows_and_bill"),
    ]

    operations = [
        migrations.AlterField(
            model_name="catalogprice",
            name="origin",
            field=models.CharField(
                choices=[
                    ("bundled", "Bundled table"),
                    ("import", "AWS bulk price list import"),
                    ("lookup", "AWS Price List Query API lookup"),
                ],
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="PriceLookup",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("region", models.CharField(max_length=32)),
                ("instance_type", models.CharField(max_length=64)),
                ("asked_at", models.DateTimeField()),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("found", "Found"),
                            ("not-found", "AWS lists no price"),
                            ("failed", "The lookup failed"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "price",
                    models.DecimalField(blank=True, decimal_places=6, max_digits=14, null=True),
                ),
                ("source", models.CharField(blank=True, max_length=400)),
                ("error", models.CharField(blank=True, max_length=500)),
                ("requests", models.PositiveIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("region", "instance_type"), name="price_lookup_key"
                    )
                ],
            },
        ),
    ]
