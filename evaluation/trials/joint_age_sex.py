import yaml, json
p='src/hipdx/knowledge/data/variables/patient.yaml'
text=open(p).read()
d=yaml.safe_load(text)
vs={v['id']:v for v in d['variables']}
age=vs['age_band']; sex=vs['sex_pregnancy']
AGES=['under_18','18_to_39','40_to_59','60_or_more']
SEXES=['male','female_not_pregnant','pregnant_or_postpartum']
def full(dist, states):
    p=dict(dist['p']); rest=[s for s in states if s not in p]; assert len(rest)==1
    p[rest[0]]=1-sum(p.values()); return p
def fmt(x):
    return f"{x:.4g}"
def refs(*ds):
    out=[]
    for dd in ds:
        r=dd.get('ref')
        if r is None: continue
        for x in ([r] if isinstance(r,str) else r):
            if x not in out: out.append(x)
    return out
lines=[]
lines.append("  - id: age_sex_pregnancy")
lines.append("    label: Age, sex and pregnancy")
lines.append("    group: patient")
states=[f"{s}_{a}" for s in SEXES for a in AGES]
lines.append(f"    states: [{', '.join(states)}]")
aggs={}
for a in AGES: aggs[f"age_{a}"]=[f"{s}_{a}" for s in SEXES]
for s in SEXES: aggs[s]=[f"{s}_{a}" for a in AGES]
aggs['female']=[f"{s}_{a}" for s in SEXES[1:] for a in AGES]
for a in AGES: aggs[f"female_{a}"]=[f"{s}_{a}" for s in SEXES[1:]]
lines.append("    aggregates:")
for k,v in aggs.items(): lines.append(f"      {k}: [{', '.join(v)}]")
lines.append("    source: {computed: age_sex_pregnancy}")
lines.append("    note: >")
lines.append("      One variable, because the age of a condition can depend on the sex (TOH is three populations:")
lines.append("      women late in pregnancy or after delivery, men of 30-60 and older non-pregnant women) and")
lines.append("      pregnancy exists only in women. A woman of unknown pregnancy status counts as the aggregate")
lines.append("      \"female\" of her age band, a patient of unknown age as the aggregate of the sex, of unknown sex")
lines.append("      as that of the age band (under 18, 18-39, 40-59, 60 or more). Where no joint figures exist,")
lines.append("      age and sex are taken as independent given the condition and the joint probability is the")
lines.append("      product of the two splits, each given in the note with its sources.")
lines.append("    likelihoods:")
# TOH joint
toh_sex={'male':0.57,'female_not_pregnant':0.19,'pregnant_or_postpartum':0.24}
import os
toh_age=json.loads(os.environ['TOH_AGE']) if os.environ.get('TOH_AGE') else {'male':{'under_18':0.005,'18_to_39':0.45,'40_to_59':0.48,'60_or_more':0.065},
         'female_not_pregnant':{'under_18':0.005,'18_to_39':0.30,'40_to_59':0.35,'60_or_more':0.345},
         'pregnant_or_postpartum':{'under_18':0.01,'18_to_39':0.85,'40_to_59':0.139,'60_or_more':0.001}}
for s in SEXES: assert abs(sum(toh_age[s].values())-1)<1e-9
for cid in ['toh','rmo','onfh','sif','fnsf','septic','inflammatory','oa','neoplasm','pvns']:
    la=age['likelihoods'][cid]; ls=sex['likelihoods'][cid]
    pa=full(la,[f"age_{a}" for a in AGES]); ps=full(ls,SEXES)
    if cid=='toh':
        joint={f"{s}_{a}": toh_sex[s]*toh_age[s][a] for s in SEXES for a in AGES}
        basis='estimate'; n=20
        r=['ohana2019','radiopaedia_toh','holzer2009','agarwala2019','vaishya2017','toussia_cohen','gulati2024']
        note=("Three populations (an estimate of the age within each sex; no series gives the joint). Sex and pregnancy as before: "
               "of 447 reported hip TOH, 105 in pregnancy (Ohana 2019): 0.24; the other 342 by the male:female ratio of 3:1 (Radiopaedia): men 0.57, non-pregnant women 0.19. "
               "Age within each: men of 30-60 with means of 38-42 (Agarwala 2019, Vaishya 2017; 37 of Holzer's 43 were men): 18-39 0.45, 40-59 0.48, 60 or more 0.065; "
               "pregnant or postpartum women around 34 (Toussia-Cohen, 34 women): 18-39 0.85, 40-59 0.139, 60 or more 0.001; "
               "non-pregnant women older (Gulati 2024: 50 patients, 29 women, none pregnant, mean age 62 +/- 12 years; a normal of that mean and spread puts about 0.57 at 60 or more, 0.39 at 40-59 and 0.04 below 40), "
               "tempered towards younger women for the case reports of non-pregnant women in their 30s-40s: 18-39 0.15, 40-59 0.35, 60 or more 0.495; under 18 0.005-0.01 in each. "
               "The marginal age split is 18-39 0.49, 40-59 0.38, 60 or more 0.13.")
    else:
        joint={f"{s}_{a}": ps[s]*pa[f"age_{a}"] for s in SEXES for a in AGES}
        basis='estimate'; n=min(la['n'],ls['n'])
        r=refs(la,ls)
        note=("Age and sex independent given the condition (no joint figures found): the product of the age split "
              + ", ".join(f"{a.replace('_to_','-').replace('_',' ')} {pa['age_'+a]:.3g}" for a in AGES)
              + f" ({la['basis']}: {la['note'].rstrip('.')}) and the sex split "
              + ", ".join(f"{s.replace('_',' ')} {ps[s]:.3g}" for s in SEXES)
              + f" ({ls['basis']}: {ls['note'].rstrip('.')}).")
    assert abs(sum(joint.values())-1)<1e-9
    big=max(joint,key=joint.get)
    shown={k:v for k,v in joint.items() if k!=big}
    pstr=", ".join(f"{k}: {fmt(v)}" for k,v in shown.items())
    rstr=("ref: "+ (r[0] if len(r)==1 else "["+", ".join(r)+"]")+", ") if r else ""
    lines.append(f"      {cid}: {{p: {{{pstr}}}, basis: {basis}, {rstr}n: {n}, note: {json.dumps(note)}}}")
block="\n".join(lines)+"\n"
# replace the two old variables
start=text.index("  - id: age_band")
end=text.index("  - id: corticosteroids")
text=text[:start]+block+"\n"+text[end:]
open(p,'w').write(text)
