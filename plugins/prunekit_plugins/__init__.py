"""prunekit's first-party plugins, registered through the same entry points a third party uses."""
