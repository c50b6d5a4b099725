"""GMI companies and reference data: ``/companies``, ``/tags``, ``/countries``, ``/account``."""

from __future__ import annotations

from typing import Any

from simulators.gmi_model import COUNTRIES, GmiStore, company_record
from simulators.gmi_params import (
    COMPANY_FIELDS,
    Call,
    Rejected,
    as_list,
    country_param,
    ok,
    text_param,
)
from simulators.http import Response


class CompanyRoutes:
    """Companies (custom ones can be changed) and the read-only reference lists."""

    def __init__(self, store: GmiStore) -> None:
        self._store = store

    def list_companies(self, call: Call) -> Response:
        wanted_type = text_param(call.params, "companyTypeFilter") or "0"
        with self._store.locked():
            companies = list(call.account.companies.values())
        records = [
            company_record(c, detailed=False)
            for c in companies
            if wanted_type == "0" or c.company_type == wanted_type
        ]
        return ok(records)  # a bare array, no envelope (live-observed)

    def _company(self, call: Call, raw: str, code: int) -> Any:
        if not raw.isdigit():
            raise Rejected(code)
        with self._store.locked():
            company = call.account.companies.get(int(raw))
        if company is None:
            raise Rejected(code)
        return company

    def get_company(self, call: Call, companyUid: str) -> Response:
        return ok(company_record(self._company(call, companyUid, 139), detailed=True))

    def create_company(self, call: Call) -> Response:
        p = call.params
        name = text_param(p, "name").strip()
        if not name:
            raise Rejected(114)
        if p.get("countryUid") in (None, ""):
            raise Rejected(115)
        country = country_param(p.get("countryUid"))
        extra = {k: str(p[k]) for k in COMPANY_FIELDS if k in p}
        with self._store.locked():
            if call.account.company_named(name) is not None:
                raise Rejected(116)  # names are unique per account (case-insensitive here)
            company = self._store.add_company(
                call.account.api_key,
                name,
                country_uid=country,
                tags=[str(t) for t in as_list(p.get("tags"))],
                **extra,
            )
        return ok({"success": True, "companyUid": company.uid, "name": company.name})

    def update_company(self, call: Call, companyUid: str) -> Response:
        company = self._company(call, companyUid, 131)
        if company.company_type != "CUSTOM_COMPANY":
            raise Rejected(125)
        p = call.params
        if not any(k in p for k in ("name", "countryUid", "tags")):
            raise Rejected(121)
        with self._store.locked():
            if "name" in p:
                name = text_param(p, "name").strip()
                other = call.account.company_named(name)
                if not name or (other is not None and other.uid != company.uid):
                    raise Rejected(116)
                company.name = name
            if "countryUid" in p:
                company.country_uid = country_param(p["countryUid"])
            if "tags" in p:
                company.tags = [str(t) for t in as_list(p["tags"])]
            company.fields.update({k: str(p[k]) for k in COMPANY_FIELDS if k in p})
        return ok({"success": True, "companyUid": company.uid, "name": company.name})

    def delete_company(self, call: Call, companyUid: str) -> Response:
        company = self._company(call, companyUid, 131)
        if company.company_type != "CUSTOM_COMPANY":
            raise Rejected(125)
        with self._store.locked():
            if any(d.company_uid == company.uid for d in call.account.documents.values()):
                raise Rejected(129)
            call.account.companies.pop(company.uid, None)
        return ok({"success": True})

    def tags(self, call: Call) -> Response:
        return ok({"success": True, "data": self._store.all_tags(call.account.api_key)})

    def countries(self, call: Call) -> Response:
        return ok(
            [
                {
                    "countryUid": uid,
                    "name": name,
                    "translations": {"en_us": name, "de_de": german},
                    "countryCode": code,
                    "vat": vat,
                    "is_eu": eu,
                }
                for uid, name, german, code, vat, eu in COUNTRIES
            ]
        )

    def account(self, call: Call) -> Response:
        account = call.account
        return ok({"name": account.name, "accountId": account.account_id, "profileImage": ""})
