"""双证融通 projects: application, expert panel, votes, publication through the rules' maker-checker, suspension,
end, and the signed exemption list for the skills appraisal centre (docs/projects.md)."""
