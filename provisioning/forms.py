from __future__ import annotations

from typing import Any

from django import forms

from provisioning.models import Lifecycle, Pool, PoolKind


class PoolForm(forms.Form):
    """The Pools page's form. Lists are typed as text (comma- or space-separated; labels and
    taints one per line); the service validates the values and names the field at fault."""

    slug = forms.CharField(max_length=40, required=False)
    kind = forms.ChoiceField(choices=PoolKind.choices)
    instance_types = forms.CharField(
        max_length=1000, help_text="Preferred first, e.g. m5.xlarge, m5.2xlarge"
    )
    lifecycle = forms.ChoiceField(choices=Lifecycle.choices, label="Default capacity")
    on_demand_fallback = forms.BooleanField(
        required=False, label="Allow on-demand when spot capacity is short"
    )
    max_nodes = forms.IntegerField(min_value=1)
    max_hours = forms.IntegerField(
        min_value=1, required=False, help_text="Empty: no limit (base pools only)"
    )
    zones = forms.CharField(max_length=500, required=False, help_text="Empty: any zone")
    subnets = forms.CharField(max_length=1000, required=False)
    launch_template_name = forms.CharField(max_length=128, required=False)
    launch_template_id = forms.CharField(max_length=64, required=False)
    labels = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="key=value per line"
    )
    taints = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="key=value:Effect per line",
    )

    @classmethod
    def for_pool(cls, pool: Pool) -> PoolForm:
        return cls(
            initial={
                "slug": pool.slug,
                "kind": pool.kind,
                "instance_types": ", ".join(pool.instance_types),
                "lifecycle": pool.lifecycle,
                "on_demand_fallback": pool.on_demand_fallback,
                "max_nodes": pool.max_nodes,
                "max_hours": pool.max_hours,
                "zones": ", ".join(pool.zones),
                "subnets": ", ".join(pool.subnets),
                "launch_template_name": pool.launch_template_name,
                "launch_template_id": pool.launch_template_id,
                "labels": "\n".join(f"{k}={v}" for k, v in pool.labels.items()),
                "taints": "\n".join(pool.taints),
            }
        )

    def pool_data(self) -> dict[str, Any]:
        return dict(self.cleaned_data)
