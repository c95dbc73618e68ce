from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="volume",
            name="iops",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="volume",
            name="throughput",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
