"""The national axis protocol (VXP) face: the calls of the axis SDK that QLVB installations already speak
(``/work/shared/VXP.md``), authenticated by a VXP system's id and shared secret (HMAC over the signed
headers), in front of the same acceptance and delivery as the native API; and the admin side of those
credentials (``systems``: a system serves one agency and, by default, every agency registered under it).
"""
