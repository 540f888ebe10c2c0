"""Deterministic simulation of many nodes on one virtual network and clock."""

from .cluster import SimConfig, SimResult, Simulation
from .faults import FAULT_KINDS, Fault, parse_kinds
from .invariants import Violation, check
from .network import LinkModel, VirtualNetwork

__all__ = ["FAULT_KINDS", "Fault", "LinkModel", "SimConfig", "SimResult", "Simulation", "Violation",
           "VirtualNetwork", "check", "parse_kinds"]
