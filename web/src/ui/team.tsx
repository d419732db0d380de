// The plan's seller team (issue 15): the owner and the colleagues who work on the plan with
// them. The owner, managers and admins add a colleague by email (an existing member) and take
// one off; everyone else on the seller side sees who is on it. Buyers never see this.

import { useEffect, useState } from 'preact/hooks'
import { ApiFailure, type Api, type Me, type PlanMember } from '../api'
import { canManageTeam, teamProblem } from '../workspace'
import { Section } from './sections'

export function SellerTeam ({ api, me }: { api: Api, me: Me }) {
  const [members, setMembers] = useState<PlanMember[] | null>(null)
  const [problem, setProblem] = useState<string | null>(null)
  const [message, setMessage] = useState<{ text: string, bad: boolean } | null>(null)
  const [email, setEmail] = useState('')
  const [busy, setBusy] = useState(false)
  const load = async () => {
    try { setMembers(await api.members()); setProblem(null) } catch (error) {
      setProblem(error instanceof ApiFailure && error.status === 404 && error.code !== 'plan_not_found'
        ? 'The seller team is not available on this server.'
        : error instanceof ApiFailure && error.status === 403 ? 'Only the seller’s team sees who works on this plan.' : 'The seller team needs a connection.')
    }
  }
  useEffect(() => { void load() }, [api])
  const manage = members !== null && canManageTeam(me, members)
  const failed = (error: unknown, address = '') => setMessage({ text: teamProblem(error instanceof ApiFailure ? error.code : 'offline', address), bad: true })

  const add = async (e: Event) => {
    e.preventDefault()
    const address = email.trim()
    if (address === '') return
    setBusy(true)
    try {
      const { member } = await api.addMember(address)
      setEmail('')
      setMessage({ text: `${member.name} can now open this plan from their home page.`, bad: false })
      await load()
    } catch (error) { failed(error, address) } finally { setBusy(false) }
  }
  const remove = async (m: PlanMember) => {
    setBusy(true)
    try {
      await api.removeMember(m.member.id)
      setMessage({ text: `${m.member.name} is off this plan.`, bad: false })
    } catch (error) { failed(error) } finally { setBusy(false); await load() }
  }

  return (
    <div class='seller-only'>
      <Section id='team' title='Seller team' intro='Who on your side works on this plan. Colleagues on it see it on their home page and edit it as the seller.'>
        {problem !== null && <p class='muted' data-testid='team-problem'>{problem}</p>}
        {members === null && problem === null && <p class='muted'>Loading…</p>}
        {members !== null && (
          <ul class='team' data-testid='team'>
            {members.map(m => (
              <li key={m.member.id} data-testid='team-member' data-id={m.member.id} data-role={m.role}>
                <strong>{m.member.name}</strong> <span class='muted'>{m.member.email}</span>{' '}
                <span class='badge'>{m.role === 'owner' ? 'owner' : 'colleague'}</span>
                {manage && m.role !== 'owner' && (
                  <button type='button' class='link' disabled={busy} onClick={() => { void remove(m) }} aria-label={`Take ${m.member.name} off this plan`}>Remove</button>
                )}
              </li>
            ))}
          </ul>
        )}
        {manage && (
          <form class='row team-form' onSubmit={e => { void add(e) }}>
            <label class='field'><span class='field-label'>Colleague’s email</span>
              <input type='email' required value={email} placeholder='name@yourcompany.example' onInput={e => setEmail((e.currentTarget as HTMLInputElement).value)} />
            </label>
            <button type='submit' disabled={busy}>Add to the plan</button>
          </form>
        )}
        {members !== null && !manage && <p class='muted' data-testid='team-readonly'>Only the plan’s owner, a manager or an admin adds or removes colleagues.</p>}
        {message !== null && (message.bad
          ? <p class='banner warn' role='alert' data-testid='team-message' data-bad='true'>{message.text}</p>
          : <p class='muted' role='status' data-testid='team-message' data-bad='false'>{message.text}</p>)}
      </Section>
    </div>
  )
}
