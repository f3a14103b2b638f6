"""The restore scene's fixtures, for the tests of this directory only (the playbook tests
have a `scene` of their own)."""

from tests.lab.restore_scene import scene, ssh_scene, state_scene

__all__ = ["scene", "ssh_scene", "state_scene"]
