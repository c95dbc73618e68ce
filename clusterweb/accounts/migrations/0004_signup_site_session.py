# The signup site's own session table (issue 13, finding 11).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_directory_accounts"),
    ]

    operations = [
        migrations.CreateModel(
            name="SignupSiteSession",
            fields=[
                (
                    "session_key",
                    models.CharField(
                        max_length=40,
                        primary_key=True,
                        serialize=False,
                        verbose_name="session key",
                    ),
                ),
                ("session_data", models.TextField(verbose_name="session data")),
                (
                    "expire_date",
                    models.DateTimeField(db_index=True, verbose_name="expire date"),
                ),
            ],
            options={
                "verbose_name": "signup site session",
                "db_table": "accounts_signup_site_session",
            },
        ),
    ]
