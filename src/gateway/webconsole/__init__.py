"""The operator web console at ``/console`` (issue 16): server-rendered pages over the same services the API
uses, signed in with an operator token exchanged for a session cookie."""
