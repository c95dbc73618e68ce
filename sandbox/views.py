from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from clusterweb.audit.services import audit_record
from clusterweb.permissions import admin_required
from clusterweb.tasking import enqueue_on_commit
from provisioning.tasks import inventory_sync
from sandbox import aws_control, mail


@require_GET
@admin_required
def mail_list(request: HttpRequest) -> HttpResponse:
    return render(request, "sandbox/mail_list.html", {"mails": mail.mail_list()})


@require_GET
@admin_required
def mail_detail(request: HttpRequest, name: str) -> HttpResponse:
    found = mail.mail_get(name)
    if found is None:
        raise Http404("no such mail")
    return render(request, "sandbox/mail_detail.html", {"mail": found})


@require_POST
@admin_required
def spot_interrupt(request: HttpRequest, instance_id: str) -> HttpResponse:
    """Ask the AWS layer to reclaim a spot instance the way AWS does, then sync the inventory so
    the Nodes page shows it. This is the sandbox's control plane, not an outside system: a real
    deployment has no such URL."""
    try:
        interruption = aws_control.spot_interrupt(instance_id)
    except aws_control.ControlError as exc:
        messages.error(request, f"Could not interrupt {instance_id}: {exc}")
    else:
        audit_record(
            action="sandbox.spot_interrupted",
            actor=request.user,
            target=instance_id,
            request=request,
            detail={"terminates_at": interruption.get("terminates_at")},
        )
        enqueue_on_commit(inventory_sync)
        messages.success(request, f"AWS is reclaiming the spot instance {instance_id} (sandbox).")
    return redirect("provisioning:nodes")
