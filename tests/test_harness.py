"""The real-service harness itself: each throwaway server is real and reachable the way the
product reaches it."""

import json
import subprocess
import sys
from pathlib import Path

import boto3
import ldap
import pytest

from sandbox import directory
from sandbox.services.base import free_port, reserve_port


def test_the_moto_server_answers_boto3_over_http(aws):
    ec2 = boto3.client("ec2", region_name="eu-west-1")  # AWS_ENDPOINT_URL points at moto
    assert ec2.meta.endpoint_url == aws.url
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.run_instances(ImageId=image, InstanceType="t2.micro", MinCount=1, MaxCount=1)
    reservations = ec2.describe_instances()["Reservations"]
    assert len(reservations) == 1
    aws.reset()
    assert ec2.describe_instances()["Reservations"] == []


def test_slapd_has_the_personas_the_ssh_key_schema_and_the_password_policy(directory_server):
    conn = directory_server.admin()
    try:
        people = conn.search_s(
            directory.PEOPLE_DN,
            ldap.SCOPE_ONELEVEL,
            "(objectClass=posixAccount)",
            ["uid", "uidNumber"],
        )
        assert sorted(a["uid"][0].decode() for _, a in people) == ["alice", "bob", "carol"]
        assert min(int(a["uidNumber"][0]) for _, a in people) == 10001
        # openssh-lpk: a key can be stored on a person.
        key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x"
        conn.modify_s(directory.BY_UID["bob"].dn, [(ldap.MOD_ADD, "sshPublicKey", [key.encode()])])
        # ppolicy: the lock attribute exists and can be set (the Users page will use it).
        conn.modify_s(
            directory.BY_UID["carol"].dn,
            [(ldap.MOD_ADD, "pwdAccountLockedTime", [b"000001010000Z"])],
        )
        with pytest.raises(ldap.INVALID_CREDENTIALS):
            user = ldap.initialize(directory_server.uri)
            user.simple_bind_s(directory.BY_UID["carol"].dn, directory.BY_UID["carol"].password)
        conn.modify_s(
            directory.BY_UID["carol"].dn, [(ldap.MOD_DELETE, "pwdAccountLockedTime", None)]
        )
        conn.modify_s(directory.BY_UID["bob"].dn, [(ldap.MOD_DELETE, "sshPublicKey", None)])
    finally:
        conn.unbind_s()
    users = {p.uid for p in directory.PERSONAS if "users" in p.groups}
    assert users == {"alice", "bob"}


def test_the_users_group_has_gid_10000(directory_server):
    conn = directory_server.admin()
    try:
        _, attrs = conn.search_s(f"cn=users,{directory.GROUPS_DN}", ldap.SCOPE_BASE)[0]
    finally:
        conn.unbind_s()
    assert attrs["gidNumber"] == [b"10000"]


def test_free_ports_are_never_handed_out_twice_nor_reserved_ones_nor_ephemeral_ones():
    # The sandbox is given its web and signup ports before it starts its services: a service
    # picking the same port would take the signup site's place (seen once in CI, when the
    # kernel's bind(0) handed the same port to the test and to JupyterHub).
    low_ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    taken = [free_port() for _ in range(100)]
    assert len(set(taken)) == len(taken)
    assert all(1024 < port < low_ephemeral for port in taken)
    reserved = next(p for p in range(20000, 21000) if p not in taken)
    reserve_port(reserved)
    assert reserved not in {free_port() for _ in range(100)}


def test_a_child_process_never_hands_out_a_port_its_parent_did():
    # The test hands the sandbox its web port; the sandbox's own services must not take the
    # ports the test process gave its servers that may not listen yet (Redis, slapd...).
    mine = [free_port() for _ in range(5)]
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sandbox.services import base; print(sorted(base._handed_out))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert set(mine) <= set(json.loads(child.stdout))
