"""Deployments: the operator's intent in the store, reconciled into supervised backend processes."""
