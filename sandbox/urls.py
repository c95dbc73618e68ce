from django.urls import path

from sandbox import views

app_name = "sandbox"
urlpatterns = [
    path("mail/", views.mail_list, name="mail"),
    path("mail/<str:name>/", views.mail_detail, name="mail_detail"),
    path("spot-interruptions/<str:instance_id>/", views.spot_interrupt, name="spot_interrupt"),
]
