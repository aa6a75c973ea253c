"""CycloneDX SBOMs of the packages (pure): the wheelhouse RPM with its wheels, and the
whole bundle (every airflow-prod-* RPM, with the wheels as what the wheelhouse RPM holds).

Two documents, because of where each can live: the wheelhouse SBOM is known before the
site packages are built, so the base package ships it in the docs directory; the bundle
SBOM carries the sha256 of each published (signed) RPM, so it can only travel beside them,
in the repository and its export.
"""

from __future__ import annotations

from packageurl import PackageURL

from builder.pydeps import sbom
from builder.rpm.plan import RpmPackage, SpecPlan

NAMESPACE = "airflow-prod"   # the purl namespace: the vendor of these packages, not RHEL's


def rpm_purl(plan: SpecPlan, pkg: RpmPackage, distro: str) -> str:
    return PackageURL(type="rpm", namespace=NAMESPACE, name=pkg.name, version=f"{plan.version}-{plan.release}",
                      qualifiers={"arch": pkg.arch, "distro": distro}).to_string()


def rpm_component(plan: SpecPlan, pkg: RpmPackage, distro: str, sha256: str = "") -> dict:
    """One RPM as a component; with its sha256 when the published file is known."""
    purl = rpm_purl(plan, pkg, distro)
    comp: dict = {
        "type": "application", "bom-ref": purl, "name": pkg.name,
        "version": f"{plan.version}-{plan.release}", "purl": purl, "description": pkg.summary,
        "properties": [{"name": "airflow-prod:file", "value": plan.rpm_filename(pkg)}],
    }
    if sha256:
        comp["hashes"] = [{"alg": "SHA-256", "content": sha256}]
    return comp


def wheelhouse_bom(plan: SpecPlan, items: list[sbom.WheelhouseItem], distro: str) -> str:
    """The wheelhouse RPM as the subject, each wheel and sdist it holds as a component."""
    subject = rpm_component(plan, plan.main, distro)
    wheels = [sbom.component(i) for i in items]
    return sbom.document(subject, wheels, {subject["bom-ref"]: [w["bom-ref"] for w in wheels]},
                         plan.source_date_epoch)


def bundle_bom(site_name: str, site: SpecPlan, wheelhouse: SpecPlan, items: list[sbom.WheelhouseItem],
               published: dict[str, str], distro: str, epoch: int) -> str:
    """Every RPM of the build (sha256 by file name in `published`) and the wheels; each
    RPM depends on the bundle's packages it requires, the wheelhouse RPM on its wheels."""
    rpms = {pkg.name: rpm_component(plan, pkg, distro, published.get(plan.rpm_filename(pkg), ""))
            for plan in (wheelhouse, site) for pkg in plan.packages}
    wheels = [sbom.component(i) for i in items]
    subject = {
        "type": "application", "bom-ref": f"bundle:{site_name}", "name": f"airflow-prod-{site_name}",
        "version": f"{site.version}-{site.release}",
        "description": f"The airflow-prod RPM bundle of site {site_name}",
    }
    deps = {subject["bom-ref"]: [c["bom-ref"] for c in rpms.values()]}
    packages = [pkg for plan in (wheelhouse, site) for pkg in plan.packages]
    # A requirement names a package or something one provides (airflow-prod-config).
    provider = {n: pkg.name for pkg in packages for n in (pkg.name, *(p.split()[0] for p in pkg.provides))}
    for pkg in packages:
        wanted = {r.split()[0] for r in (*pkg.requires, *pkg.requires_pre, *pkg.requires_post)}
        deps[rpms[pkg.name]["bom-ref"]] = sorted(rpms[provider[n]]["bom-ref"] for n in wanted if n in provider)
    deps[rpms[wheelhouse.main.name]["bom-ref"]] = [w["bom-ref"] for w in wheels]
    return sbom.document(subject, [*rpms.values(), *wheels], deps, epoch)
