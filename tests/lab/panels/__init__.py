"""Stand-ins for control panels that do not install on the test machine (see panel_scene)."""
