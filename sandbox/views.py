from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from clusterweb.permissions import admin_required
from sandbox import mail


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
