"""Security advisories for the locked packages, offline: OSV records an admin imports.

    osv       one OSV record, read and checked: the model (Advisory, Affected, Range)
    ranges    whether a version is affected: ECOSYSTEM ranges (PEP 440 order), version lists
    severity  CVSS v2/v3/v4 base scores (the `cvss` library), database_specific words
    feed      OSV files from a directory or a zip (osv.dev's per-ecosystem export), and the
              imported feed: validated once, stored per package, with what it was made from
    audit     the lock's pins against a feed: findings, merged across aliases, as text and JSON

Nothing here touches the network: the feed is whatever the admin carried in.
"""
