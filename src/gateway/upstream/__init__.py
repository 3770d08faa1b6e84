"""The gateway as a client of an upstream axis (issue 15): another gateway's ``/vxp`` face or the national axis.

:mod:`gateway.upstream.client` speaks the axis protocol (``/work/shared/VXP.md``) as the SDK does;
:mod:`gateway.upstream.errors` names every way a call fails. The forwarder, the poller and the register sync
are built on them.
"""
