"""RPM packaging: plans (what goes where), spec rendering, the rpmbuild driver."""
